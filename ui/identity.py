"""Who this browser is in a class: a student token its cookie keeps, a display name, and the teacher's unlock.

Nothing shows without a class (no teacher passcode set): every browser is then the lab's one user.
The token is random, kept in a cookie for a year, and never shown; a reload, a page switch or a new tab in
the same browser reads it back (`st.context.cookies`), and another browser is another student.
"""

from __future__ import annotations

import json
import re
import secrets

import streamlit as st

from mnist_core.classroom import LAB_USER, Visitor, is_passcode, teacher_mark
from mnist_core.db import StoreError
from mnist_core.jobs import Lab
from mnist_core.students import RosterError

STUDENT_COOKIE, TEACHER_COOKIE = "mnist_lab_student", "mnist_lab_teacher"
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
OWNER, TEACHER, NAME, COOKIES_TO_WRITE = "visitor_owner", "visitor_teacher", "visitor_name", "cookies_to_write"
YEAR_SECONDS = 365 * 24 * 3600


def _cookie(name: str) -> str:
    """The cookie's value from this browser's request; '' without one (or without a browser: AppTest)."""
    try:
        value = st.context.cookies.get(name)
    except (AttributeError, RuntimeError):
        return ""
    return value if isinstance(value, str) else ""


def _remember(name: str, value: str, seconds: int = YEAR_SECONDS) -> None:
    """Set a cookie on the next draw (a script in the page: Streamlit offers no server-side cookie)."""
    st.session_state.setdefault(COOKIES_TO_WRITE, {})[name] = (value, seconds)


def visitor(lab: Lab) -> Visitor:
    """This session's visitor: a student (or the teacher) in a class, else the lab's one user."""
    if not lab.in_class:
        return LAB_USER
    if OWNER not in st.session_state:
        token = _cookie(STUDENT_COOKIE)
        if not TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(18)
            _remember(STUDENT_COOKIE, token)
        st.session_state[OWNER] = token
        mark = _cookie(TEACHER_COOKIE)
        st.session_state[TEACHER] = bool(mark) and secrets.compare_digest(mark, teacher_mark(lab.passcode, token))
    return lab.visitor(st.session_state[OWNER], st.session_state[TEACHER])


def name_of(lab: Lab, who: Visitor) -> str:
    """This visitor's display name; a friendly one is given on first visit."""
    if NAME not in st.session_state:
        st.session_state[NAME] = lab.store.roster.join(who.owner)
    return st.session_state[NAME]


def _rename(lab: Lab, owner: str) -> None:
    try:
        st.session_state[NAME] = lab.store.roster.rename(owner, st.session_state.get("new_name", ""))
    except (RosterError, StoreError) as err:
        st.session_state["rename_problem"] = str(err)


def _unlock(lab: Lab, owner: str) -> None:
    if is_passcode(st.session_state.get("passcode", ""), lab.passcode):
        st.session_state[TEACHER] = True
        _remember(TEACHER_COOKIE, teacher_mark(lab.passcode, owner))
    else:
        st.session_state["unlock_problem"] = "That is not the teacher passcode."


def _lock() -> None:
    st.session_state[TEACHER] = False
    _remember(TEACHER_COOKIE, "", 0)


def sidebar(lab: Lab) -> None:
    """In a class: who you are, a name to change, and the teacher's unlock; sets the cookies due."""
    if not lab.in_class:
        return
    who = visitor(lab)
    try:
        name = name_of(lab, who)
    except (RosterError, StoreError) as err:
        st.sidebar.error(str(err))
        return
    with st.sidebar:
        st.caption("You are")
        st.text(f"{name}{' (teacher)' if who.teacher else ''}")  # a name is shown as typed, never as markdown
        with st.popover("Change my name"), st.form("rename", border=False):
            st.text_input("Your name in this class", key="new_name")  # the core says when it is too long
            st.form_submit_button("Use this name", on_click=_rename, args=(lab, who.owner))
        if "rename_problem" in st.session_state:
            st.error(st.session_state.pop("rename_problem"))
        if who.teacher:
            st.button("Leave teacher mode", on_click=_lock)
        else:
            with st.popover("Teacher"), st.form("unlock", border=False, clear_on_submit=True):
                st.text_input("Teacher passcode", type="password", key="passcode")
                st.form_submit_button("Unlock", on_click=_unlock, args=(lab, who.owner))
            if "unlock_problem" in st.session_state:
                st.error(st.session_state.pop("unlock_problem"))
    _write_cookies()


def _write_cookies() -> None:
    due = st.session_state.pop(COOKIES_TO_WRITE, {})
    if due:
        lines = "".join(f"document.cookie = {json.dumps(f'{name}={value}; path=/; max-age={seconds}; SameSite=Lax')};"
                        for name, (value, seconds) in due.items())
        st.html(f"<script>{lines}</script>", unsafe_allow_javascript=True)
