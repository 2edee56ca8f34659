"""Code that the Python-backend models of triton-qa run, importable without Triton."""
