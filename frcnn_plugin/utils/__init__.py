"""Plumbing around mmdet's tools and configs: running mmdet's tool scripts, distributed
launch on CPUs, pretrained weights offline, missing data, config pipelines and swapping
component types."""
