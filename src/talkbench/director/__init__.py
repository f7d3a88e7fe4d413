"""talkbench.director: text instructions → a time-coded control plan → keyframes → sub-clips (Kling-Avatar's recipe).

- ``vocab``: the closed control vocabulary (head, camera, emotion, gesture) with prototype phrases, one registry.
- ``text``: the offline text embedding (WordLlama, built from its wheel's files) and the NRC emotion lexicon.
- ``segments``: speech segments from pauses and energy; word spans estimated from a transcript.
- ``plan``: ``make_plan`` (instruction + audio → plan dict) and ``validate_plan``.
- ``keyframes``: keyframes chosen from a motion blueprint by documented criteria.
- ``subclips``: split at keyframes, pad, denoise every sub-clip in one batch with its ends clamped, stitch.

Layer: the package imports only ``errors`` and ``media``; ``metrics.instruction`` reads its vocabulary.
"""
