"""talkbench.metrics: every talking-head metric under a pinned protocol.

- ``weights``: the registry of pretrained networks (``talkbench weights list|fetch|import|verify``).
- ``nets``: AlexNet/VGG, the FID Inception-v3 and SyncNet, written here in the official files' key layouts.
- ``pixel`` (PSNR, SSIM), ``lpips``, ``frechet`` (FID, clean-FID, FVD), ``sync`` (Sync-C/D, AV offset),
  ``identity`` (CSIM, AED), ``hands`` (HKC), ``motion`` (Diversity, AKD, AKD↔driver): functional cores; the
  ``torchmetrics.Metric`` classes are beside them (pixel, lpips, frechet) or in ``video_metrics``.
- ``spec.METRICS``: the metric registry (name, inputs, level, direction, label, weights, compute entry), read by the
  Evaluator, the bench tasks, the summaries and the leaderboards; ``scores``: the compute entries.
- ``evaluate.Evaluator``: all metrics of a protocol over a stream of videos, as rows of the ``results`` schema.
- ``random_weights``: random-weight files in each entry's official format, for tests and benchmarks.

Submodules import their heavy dependencies lazily; import what you use.
"""
