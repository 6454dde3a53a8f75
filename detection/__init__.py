"""Detectron2 adapter for MicroNet (imports as ``micronet_backbones.detection``)."""
