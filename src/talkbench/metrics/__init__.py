"""talkbench.metrics: every talking-head metric under a pinned protocol.

- ``nets``: the FID Inception-v3 and SyncNet, written here in the official files' key layouts, and the TorchScript
  entries (clean-FID Inception, I3D); each module registers its ``talkbench.weights`` entry (the weights layer below
  holds the registry and the AlexNet/VGG backbones; faces below holds detection, ArcFace and head pose).
- ``pixel`` (PSNR, SSIM), ``lpips``, ``frechet`` (FID, clean-FID, FVD), ``sync`` (Sync-C/D, AV offset),
  ``identity`` (CSIM, AED), ``hands`` (HKC), ``motion`` (Diversity, AKD, AKD↔driver): functional cores; the
  ``torchmetrics.Metric`` classes are beside them (pixel, lpips, frechet) or in ``video_metrics``.
- ``spec.METRICS``: the metric registry (name, inputs, level, direction, label, weights, compute entry), read by the
  Evaluator, the bench tasks, the summaries and the leaderboards; ``scores``: the compute entries.
- ``evaluate.Evaluator``: all metrics of a protocol over a stream of videos, as rows of the ``results`` schema.
- ``random_weights``: random-weight files in each entry's official format, for tests and benchmarks.

Submodules import their heavy dependencies lazily; import what you use.
"""
