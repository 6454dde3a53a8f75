"""MMPose adapter for MicroNet (imports as ``micronet_backbones.pose``)."""
