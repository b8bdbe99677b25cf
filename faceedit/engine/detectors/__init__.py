"""One module per face detector; faceedit.engine.detect.make_detector imports only the one chosen."""
