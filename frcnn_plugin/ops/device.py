"""Where the ops choose by device: reading a device's value on the host.

Python reading a value the device computed (``.item()``, ``bool(tensor)``, the output
size of ``nonzero`` or of boolean-mask indexing) waits for it. On the CPU the value is
already in memory; on a GPU the host waits for every kernel queued before it, and the
GPU then idles while Python queues the next ones. Where the fastest CPU algorithm reads
such values in a loop (NMS's block walk and its in-block rounds, RoIAlign's size
check), the ops run a variant without them on other devices, chosen by
:func:`host_reads_are_cheap`; tests/test_host_syncs.py counts the reads of both.
"""
from torch import Tensor


def host_reads_are_cheap(tensor: Tensor) -> bool:
    """Whether the host reads values of ``tensor``'s device without waiting (the CPU)."""
    return tensor.device.type == 'cpu'
