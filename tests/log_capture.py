"""The warnings mmengine's current logger receives while something runs (a dataset
loads, a tool checks)."""
import logging

from mmengine.logging import MMLogger


def log_of(run):
    """``(run(), [message of each WARNING-or-above record logged meanwhile])``."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        result = run()
    finally:
        logger.removeHandler(handler)
    return result, [r.getMessage() for r in records]
