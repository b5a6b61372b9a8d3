"""The course's machinery: what runs the course rather than what it teaches.

A student can ignore this folder; an instructor or a maintainer finds everything here:

- ``exercises``: the exercise system (a check's tests, feedback, points and reference fallback);
- ``checks/``: the exercise checks, one module per lesson (``lesson01`` … ``lesson06``);
- ``lessons``: the lesson list and where the course lives (links, the install cell);
- ``notebooks``: builds the student notebooks in ``notebooks/`` from ``solutions/``;
- ``grading/``: ``genimg grade``: ``grader`` (the batch), ``submissions`` (reading what is handed in),
  ``answers`` (each answer graded where only its definitions exist), ``kernel`` (fingerprints of the course's
  and the libraries' functions, also inside a student's kernel), ``reports`` (grades.csv, feedback pages);
- ``site``: the course as a static web site;
- ``cli``: the ``genimg`` command, a thin layer over all of the above and the lessons' code.

Imports point one way: this layer imports the lessons' modules (``genimg_course.gan`` …) and the
shared helpers (``genimg_course.common``); neither of those ever imports from here.
"""
