"""medip's benchmarks, run on purpose (``python -m benchmarks.suite``), never in CI."""
