"""The panels' models: plain Python that holds each panel's state and does its work, tested without a browser.

`teachkit.widgets` only wires ipywidgets controls to them:
- `playground.OptimizerPlayground` (on the toy loss surfaces of `surfaces`): the optimizer scrubber;
- `sampler.AugmentSampler`: the augmentation sampler;
- `monitor.TrainingMonitor`, a callback: the live training panel.
The LSUV panel's model, `LSUVStepper`, lives with the algorithm it steps, in `teachkit.init.stepper`.
"""
