"""MMEngine's ``mmengine.optim.optimizer`` import path (engine keeps these in `engine.optim`)."""
