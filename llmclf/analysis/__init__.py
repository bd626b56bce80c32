"""Analysis: what is computed from predictions and records, never from a model.

`metrics` (scores of one run), `report` (the study's records into tables), `plots` and `display` (what a notebook
shows a person), `explore` (data exploration for 00_data). Imports the layers below (config, data, approaches'
decision rules); never study.
"""
