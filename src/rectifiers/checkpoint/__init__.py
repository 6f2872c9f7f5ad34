"""Checkpoints: the file, the run directory's checkpoints, and loading a model for inference.

    store       the format, atomic writes, loading that never executes code, file names, pruning
    resume      which checkpoint a run continues from, what a resume may change, writing a run's
                checkpoints (epoch files, last.pt, best.pt)
    inference   a trained model (and how it sees images) rebuilt from a checkpoint file

A checkpoint is a plain dict. Keys written by the trainer:

    format        "rectifiers/1"
    model, optimizer, scheduler (or None), scaler (the fp16 loss scale; empty without fp16)
                  their state_dicts; model's is the unwrapped module's
    epoch, batch, step  epochs completed, batches of the next already done (0 at an epoch end),
                  optimizer steps
    world_size    processes of the run that saved it (a mid-epoch state resumes with as many)
    config        RunConfig.to_dict()
    model_args    the keyword arguments that rebuild the model with `create_model`; for a model
                  passed to `fit`, {"class": its import path} (not rebuilt from the file)
    classes       class names, index = label
    data_sizes    {"train": N, "val": M} images, which a resume compares with its data
    normalization the input normalization (`rectifiers.transforms.Normalize.state_dict()`)
    rng, epoch_sums  per-rank RNG states and partial training sums (a mid-epoch save continues them)
    best_val_top1_err, versions
"""
