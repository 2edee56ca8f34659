"""HTTP gateway of triton-qa: the Hugging Face question-answering API on Triton."""
