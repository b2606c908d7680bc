"""Looking inside a detector: its stages on one image (``stages``, the one place the
analysis calls the detector's modules), the step-by-step walk of ``tools/explain.py``
(``walkthrough``, drawn by ``drawing``), ground truth from a user's files
(``ground_truth``), where the gts of a dataset split are lost (``diagnosis`` and
``diagnosis_report``, for ``tools/diagnose.py``), and how a dataset's boxes fit the
RPN's anchors before training (``anchor_fit``, for ``tools/check_dataset.py``)."""
