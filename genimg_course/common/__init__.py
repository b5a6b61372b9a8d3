"""Helpers that every lesson calls: nothing here is a lesson's idea, so nothing here is an exercise.

- ``runtime``: ``genimg_course.setup()``: the device, the seeds and the hardware profile;
- ``data``: the course's datasets, offline first, and the student's own image folders;
- ``training``: what every training loop shares (batches, progress bars, time limits, mixed precision);
- ``checkpoint``: saving and reading model files, atomically;
- ``viz``, ``widgets``, ``dashboard``: pictures, sliders, and the live training dashboard.

These modules import no lesson module and nothing of ``genimg_course.course``.
"""
