"""The toolbox beside the lesson core: the command line, the synthetic data, the comparison app, reports, profiling,
ONNX export, TensorBoard logging, safe file writing, device and precision set-up, notebook helpers and exercise
checks. The lessons teach from the modules one folder up; these make them usable and safe."""
