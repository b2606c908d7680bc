from .ignore_region_voc_metric import IgnoreRegionVOCMetric, tpfp_ignoring_regions

__all__ = ['IgnoreRegionVOCMetric', 'tpfp_ignoring_regions']
