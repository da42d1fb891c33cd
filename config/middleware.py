"""Requests carrying text the platform cannot store are refused at the door.

A NUL character (`%00`) in a URL path, a query parameter or a form field would reach a
database query (a search, a filter, a lookup by token) and PostgreSQL refuses it with an
error that would surface as a 500. It is a 400 here, naming the parameter, for every
view: the admin, the runs pages, the API and the webhook intake alike. JSON bodies are
checked by their parsers (workflows/payloads.py), which name the field.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.html import escape

from workflows.payloads import text_problem


def _problem(request: HttpRequest) -> tuple[str, str] | None:
    if problem := text_problem(request.path):
        return "path", problem
    sources = [("query parameter", request.GET)]
    # The API takes JSON only (a form body is its 415) and the webhook intake reads its raw
    # body itself, after authenticating it; neither has form fields to look at.
    is_form = request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
    if is_form and not request.path.startswith(("/api/", "/hooks/")):
        try:
            sources.append(("form field", request.POST))
        except MultiPartParserError:
            pass  # a malformed form: Django answers it with a 400 when the view reads it
    for kind, data in sources:
        for name, values in data.lists():
            for text in (name, *values):
                if problem := text_problem(text):
                    return f"{kind} {name!r}", problem
    return None


class RefuseUnstorableText:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = _problem(request)
        if found is None:
            return self.get_response(request)
        where, problem = found
        message = f"{where} {problem}"
        if request.path.startswith(("/api/", "/hooks/")):
            return JsonResponse({"error": message}, status=400)
        return HttpResponse(f"<h1>Bad request</h1><p>{escape(message)}</p>", status=400)
