"""The run model behind the training monitor: a run directory read while the trainer writes it.

  runlog.py     RunLog: tails events.jsonl, takes each kind of line in, cuts resumes, alerts
  reader.py     tails events.jsonl with a cap on a line's length
  parsing.py    events -> numbers: scalars lines as columns in bulk, metric bands
  series.py     Series: one logged quantity as growable numpy columns
  alerts.py     the detectors (pure functions of arrays) and the collapse alarm
  snapshots.py  sample grids and checkpoints, from the log and from disk
  smoothing.py  EMA smoothing of a growing series
  decimate.py   min/max decimation for curves with more points than pixels
  export.py     CSV export

No Qt here: the monitor widget polls a RunLog from a timer and draws what it holds.
"""
from .alerts import (ALERT_TITLES, COSINE_SPREAD_ALARM, CRITIC_LOSSES, NEAR_DUPLICATES_ALARM, Alert,
                     CollapseWatch, collapse_alarm, detect_d_collapse, detect_divergence, first_nonfinite,
                     is_stalled, scalar_alerts)
from .decimate import MinMaxEnvelope, peak_decimate
from .export import write_csv
from .parsing import (ScalarColumns, event_position, metric_band, regular_scalar_columns, scalar_columns,
                      scalar_columns_line_by_line)
from .reader import MAX_LINE_BYTES, CappedEventReader
from .runlog import RUN_STATES, RunLog
from .series import METRIC_COLUMNS, SCALAR_COLUMNS, X_AXES, Series
from .smoothing import EmaSmoother, ema_smooth
from .snapshots import Snapshot

__all__ = ["ALERT_TITLES", "COSINE_SPREAD_ALARM", "CRITIC_LOSSES", "MAX_LINE_BYTES", "METRIC_COLUMNS", "NEAR_DUPLICATES_ALARM",
           "RUN_STATES", "SCALAR_COLUMNS", "X_AXES", "Alert", "CappedEventReader", "CollapseWatch", "EmaSmoother", "MinMaxEnvelope",
           "RunLog", "ScalarColumns", "Series", "Snapshot", "collapse_alarm", "detect_d_collapse",
           "detect_divergence", "ema_smooth", "event_position", "first_nonfinite", "is_stalled",
           "metric_band", "peak_decimate", "regular_scalar_columns", "scalar_alerts", "scalar_columns",
           "scalar_columns_line_by_line", "write_csv"]
