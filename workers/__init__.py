"""Worker assembly: which task queue runs which workflows and activities."""
