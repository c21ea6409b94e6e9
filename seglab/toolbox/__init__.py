"""The toolbox beside the lesson core: the command line (cli) and its jobs on checkpoints (jobs: evaluation report,
benchmark export, folder prediction), the synthetic data (synth), the comparison app (widgets), reports, profiling,
ONNX export, TensorBoard logging, safe files and checks (files, images, layouts, checkpoint_files with format
upgrades, run_folder), the guards around the training loop (loss_watch, interrupts), device, precision and torchrun
set-up (runtime, parallel), notebook helpers (nb) and exercise checks. The lessons teach from the modules one folder
up; these make them usable and safe."""
