"""One face module for every package (curation and metrics both use it; it sits below both).

- ``points``: landmark indices named once (eyes by the subject's side), the five points in ArcFace order, and the
  lip gap (mouth opening over inter-ocular distance);
- ``pose``: the one head-pose estimator (yaw, pitch, roll from 3-D landmarks), used by the curation 60° filter and
  the pose metrics alike;
- ``detect``: detection backends (MediaPipe, insightface SCRFD + 3-D landmarks) and per-frame helpers;
- ``arcface``: the ArcFace template, 5-point alignment and the ONNX embedder;
- ``buffalo``: the ``buffalo_l`` weights entry (insightface's model pack).
"""
