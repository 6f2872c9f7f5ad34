"""Checkpoints: the file, the run directory's checkpoints, and loading a model for inference.

    store       the format, atomic writes, loading that never executes code, file names, pruning
    resume      which checkpoint a run continues from, what a resume may change, writing a run's
                checkpoints (epoch files, last.pt, best.pt)
    inference   a trained model (and how it sees images) rebuilt from a checkpoint file

A checkpoint is a plain dict. Keys written by the trainer:

    format        "rectifiers/1"
    model         the unwrapped module's state_dict
    optimizer     optimizer.state_dict()
    scheduler     scheduler.state_dict() (or None)
    scaler        the GradScaler's state (the fp16 loss scale; empty without fp16)
    epoch         epochs completed before this save
    batch         batches of epoch `epoch` already done (0 at an epoch end)
    step          optimizer steps so far
    world_size    processes of the run that saved it (a mid-epoch state resumes with as many)
    config        RunConfig.to_dict()
    model_args    the keyword arguments that rebuild the model with `create_model`; for a model
                  passed to `fit`, {"class": its import path} (not rebuilt from the file)
    classes       class names, index = label
    data_sizes    {"train": N, "val": M} images, which a resume compares with its data
    normalization the input normalization (`rectifiers.transforms.Normalize.state_dict()`)
    rng           per-rank RNG states, so a resumed run continues the same random streams
    epoch_sums    per-rank partial training sums of a mid-epoch save
    best_val_top1_err, versions
"""
