"""Reports from the evidence store: pure report data (data.py) rendered to HTML/PDF (render.py)."""
