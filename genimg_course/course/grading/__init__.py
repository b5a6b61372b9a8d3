"""Grading handed-in notebooks (``genimg grade``); see INSTRUCTORS.md.

``grader`` runs the batch in the instructor's process; ``kernel`` is the part that runs inside each
student's kernel. This file imports neither, so a kernel that loads ``kernel`` stays small.
"""
