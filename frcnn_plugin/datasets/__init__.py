from .kitti_tiny import KittiTinyDataset, parse_kitti_label

__all__ = ['KittiTinyDataset', 'parse_kitti_label']
