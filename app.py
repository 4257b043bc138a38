"""GranuMamba demo (Gradio). Work in progress: the model and renderer land in later releases."""

import os

import gradio as gr

NOT_YET = (
    "# GranuMamba\n\nThe demo is not there yet: this build has the motion, audio, text and data layers "
    "and the synthetic corpus. Generation (model), rendering and the full demo come next."
)

with gr.Blocks(title="GranuMamba") as demo:
    gr.Markdown(NOT_YET)

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), share=False)
