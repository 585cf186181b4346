"""AlgoTrendy: an algorithmic trading platform in one Python distribution."""

__version__ = "0.1.0"
