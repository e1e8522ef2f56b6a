"""Start-up: the path of data imports no pandas, and pandas still works when asked for."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import monitor.pipeline, monitor.cli.main
from monitor.records import BATCH_SCHEMA, as_pandas
import pyarrow as pa
pa.array(["a", None])  # pyarrow's pandas probe already ran: no import now either
print("pandas" in sys.modules)
import pandas as pd
frame = as_pandas(BATCH_SCHEMA.empty_table())
print(type(frame).__name__, list(frame.columns) == BATCH_SCHEMA.names)
print(pa.Table.from_pandas(pd.DataFrame({"a": ["x", "y"]})).num_rows)
import os
print(os.environ["OPENBLAS_NUM_THREADS"])
"""


def test_pipeline_imports_no_pandas_and_pandas_still_works() -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no OPENBLAS_NUM_THREADS from outside
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split("\n")[:4] == ["False", "DataFrame True", "2", "1"], out.stdout + out.stderr
