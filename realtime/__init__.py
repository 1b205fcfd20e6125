"""The realtime app: faces found by MediaPipe, classified by the emotion model, tracked and drawn.

Every entry point (webcam, annotate, evaluate, benchmark) runs the same ``pipeline.Pipeline``.
"""
