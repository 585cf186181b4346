"""``python -m algotrendy`` is the ``algotrendy`` command."""

from algotrendy.app.cli import main

main()
