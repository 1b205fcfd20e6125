"""What training and the realtime app both use, and that loads nothing heavy (no torch, no MediaPipe).

Everything else depends on this package; it depends on nothing of the project. A test checks the direction.
"""
