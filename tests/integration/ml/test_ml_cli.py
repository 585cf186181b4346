"""``algotrendy ml ...`` in-process with Typer's runner on one data directory: train a model
(waiting for its job, printing the pipeline's steps and its hold-out scores), list it, promote it,
predict from the latest bars, show its importance, make a signal and list it; bad input fails
with a clear message and a non-zero exit."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.apphelp import remember
from tests.integration.trading.test_cli import run


def test_train_promote_predict_and_signal(tmp_path: Path) -> None:
    password = "pw-climodels-123456"
    remember(password)
    code, _, err = run(
        tmp_path,
        "users",
        "create",
        "--email",
        "m@example.com",
        "--username",
        "modeler",
        "--password",
        password,
    )
    assert code == 0, err
    code, out, err = run(
        tmp_path, "ml", "train", "-u", "modeler", "--symbol", "MSFT", "--name", "msft-cli",
        "--start", "2012-01-01", "--end", "2017-12-31", "--features", "minimal",
        "--hyperparams", '{"n_estimators": 30, "num_leaves": 5}', "--seed", "2",
    )  # fmt: skip
    assert code == 0, err + out
    assert "training msft-cli v1" in out and "ModelDeployment" in out, out
    assert re.search(
        r"completed: hold-out accuracy 0\.\d{3} \(majority class 0\.\d{3}\), AUC 0\.\d{3}", out
    ), out
    assert "buy and hold" in out
    model_id = re.search(r"\(([0-9a-f-]{36})\)", out).group(1)  # type: ignore[union-attr]

    code, out, err = run(tmp_path, "ml", "list", "-u", "modeler")
    assert code == 0 and model_id in out and "completed" in out, err + out
    code, out, err = run(tmp_path, "ml", "promote", "-u", "modeler", model_id)
    assert code == 0 and "msft-cli v1 is serving" in out, err + out
    code, out, err = run(tmp_path, "ml", "predict", "-u", "modeler", model_id)
    assert code == 0, err + out
    prediction = json.loads(out[out.index("{") :])
    assert 0 <= prediction["prediction"] <= 1 and prediction["as_of"].startswith("2017-12-29")
    code, out, err = run(tmp_path, "ml", "importance", "-u", "modeler", model_id)
    assert code == 0 and len(out.strip().splitlines()) == 8 and "shap" in out, err + out
    code, out, err = run(
        tmp_path, "ml", "signal", "-u", "modeler", "--symbol", "MSFT", "--model-name", "msft-cli"
    )
    assert code == 0 and re.match(r"(BUY|SELL|HOLD) MSFT strength", out), err + out
    code, out, err = run(tmp_path, "ml", "signals", "-u", "modeler")
    assert code == 0 and "MSFT" in out and "ml+technical" in out, err + out

    code, out, err = run(
        tmp_path, "ml", "train", "-u", "modeler", "--symbol", "MSFT", "--hyperparams", "{oops"
    )
    assert code != 0 and "--hyperparams is not JSON" in err + out
    code, out, err = run(tmp_path, "ml", "show", "-u", "modeler", "not-an-id")
    assert code != 0 and "not an id" in err + out
    code, out, err = run(tmp_path, "ml", "delete", "-u", "modeler", model_id)
    assert code != 0 and "serving" in err + out
