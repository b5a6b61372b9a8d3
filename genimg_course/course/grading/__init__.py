"""Grading handed-in notebooks (``genimg grade``); see INSTRUCTORS.md.

``grader`` runs the batch in the instructor's process: ``submissions`` reads what was handed in, a
Jupyter kernel runs each notebook for the feedback page (``kernel`` fingerprints inside it), ``answers``
scores each answer where only its definitions exist, ``reports`` writes the gradebook and feedback pages.
This file imports none of them, so a kernel that loads ``kernel`` stays small.
"""
