from .coco import ScratchCocoDataset
from .defects import CollectsDefects, DatasetError, Defect, instance_defects
from .kitti_tiny import KittiTinyDataset, parse_kitti_label
from .voc import ScratchVOCDataset

__all__ = ['CollectsDefects', 'DatasetError', 'Defect', 'KittiTinyDataset',
           'ScratchCocoDataset', 'ScratchVOCDataset', 'instance_defects',
           'parse_kitti_label']
