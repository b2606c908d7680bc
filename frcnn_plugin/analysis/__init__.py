"""Looking inside a detector: its stages on one image (``stages``, for
``tools/explain.py``), ground truth from a user's files (``ground_truth``), and where
the gts of a dataset split are lost (``diagnosis``, for ``tools/diagnose.py``)."""
