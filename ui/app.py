"""The ragtune app: ``streamlit run ui/app.py`` (``make run`` starts it on 127.0.0.1).

Pages: Chat, Documents, Advisor, Fine-tune, Evaluate. Every page imports only :mod:`ragtune.api`;
the index and the local model are shared by all sessions (see ui/state.py).
"""

from __future__ import annotations

import streamlit as st

from ragtune.ui import advisor, chat, documents, evaluate, finetune, state


def main() -> None:
    st.set_page_config(page_title="ragtune", page_icon=":books:", layout="wide")
    pages = [
        st.Page(chat.render, title="Chat", url_path="chat", default=True),
        st.Page(documents.render, title="Documents", url_path="documents"),
        st.Page(advisor.render, title="Advisor", url_path="advisor"),
        st.Page(finetune.render, title="Fine-tune", url_path="finetune"),
        st.Page(evaluate.render, title="Evaluate", url_path="evaluate"),
    ]
    st.navigation(pages).run()


main()
