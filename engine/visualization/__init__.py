"""MMEngine's ``mmengine.visualization.Visualizer``, over Accelerate's trackers."""

from engine.visualization.visualizer import Visualizer

__all__ = ["Visualizer"]
