"""The impersonation filter's rules, one by one (the real-server behaviour is in
tests/e2e/test_impersonation.py): what the headers ask for, the identity that results,
the headers the rest of the chain sees."""
from __future__ import annotations

import time

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy

from extserver.auth.user import UserInfo
from extserver.filters.chain import RequestContext
from extserver.filters.impersonation import (Target, WithoutUser, impersonated_user, requested_targets,
                                             split_service_account, with_impersonation)
from extserver.filters.requestinfo import parse_request_info
from extserver.machinery import errors as E

ALICE = UserInfo("alice", groups=("ops", "system:authenticated"))


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def ctx_with(*pairs: tuple[str, str]) -> RequestContext:
    path = "/apis/g/v1/namespaces/n/things"
    req = make_mocked_request("GET", path, headers=CIMultiDict(pairs + (("Accept", "application/json"),)))
    ctx = RequestContext(req, "audit-1", time.time(), time.monotonic())
    ctx.info = parse_request_info("GET", path, req.query)
    ctx.user = ALICE
    return ctx


@pytest.mark.parametrize("name,expected", [
    ("system:serviceaccount:ns:robot", ("ns", "robot")),
    ("system:serviceaccount:ns:robot.v2", ("ns", "robot.v2")),
    ("system:serviceaccount:ns", None),
    ("system:serviceaccount:ns:a:b", None),
    ("system:serviceaccount:Upper:robot", None),  # a namespace is a DNS-1123 label
    ("system:serviceaccount:ns:", None),
    ("system:serviceaccounts:ns:robot", None),
    ("bob", None),
])
def test_service_account_usernames(name, expected):
    assert split_service_account(name) == expected


def test_targets_in_kubes_order_with_extra_keys_lowered_and_unescaped():
    got = requested_targets(headers(("Impersonate-Uid", "u1"), ("impersonate-extra-Acme.com%2FScope", "s1"),
                                    ("Impersonate-Group", "g1"), ("Impersonate-User", "system:serviceaccount:n:sa"),
                                    ("Impersonate-Group", "g2"), ("Impersonate-Extra-bad%zz", "x")))
    assert got == [Target("ServiceAccount", "sa", "n"), Target("Group", "g1"), Target("Group", "g2"),
                   Target("UserExtra", "s1", extra_key="acme.com/scope"),
                   Target("UserExtra", "x", extra_key="bad%zz"), Target("UID", "u1")]
    assert requested_targets(headers(("Accept", "*/*"))) == []
    assert requested_targets(headers(("Impersonate-User", ""))) == []  # empty: no impersonation (Go: Get == "")


def test_groups_extras_or_uid_need_a_user():
    with pytest.raises(WithoutUser, match=r"^requested \[\{Group  g1    \}\] without impersonating a user$"):
        requested_targets(headers(("Impersonate-Group", "g1")))
    with pytest.raises(WithoutUser):
        requested_targets(headers(("Impersonate-User", ""), ("Impersonate-Uid", "u")))


def test_all_users_groups():
    bob = [Target("User", "bob")]
    assert impersonated_user(bob, False).groups == ("system:authenticated",)
    assert impersonated_user(bob + [Target("Group", "devs")], True).groups == ("devs", "system:authenticated")
    assert impersonated_user(bob + [Target("Group", "system:unauthenticated")], True).groups == \
        ("system:unauthenticated",)
    assert impersonated_user([Target("User", "system:anonymous")], False).groups == ("system:unauthenticated",)
    # a service account's groups only when none are asked for
    sa = [Target("ServiceAccount", "robot", "team")]
    assert impersonated_user(sa, False).groups == ("system:serviceaccounts", "system:serviceaccounts:team",
                                                   "system:authenticated")
    assert impersonated_user(sa + [Target("Group", "g")], True).groups == ("g", "system:authenticated")
    # the impersonated identity has only the extras asked for (not the requestor's)
    u = impersonated_user(bob + [Target("UserExtra", "a", extra_key="k"), Target("UserExtra", "b", extra_key="k"),
                                 Target("UID", "42")], False)
    assert (u.name, u.uid, u.extra_dict) == ("bob", "42", {"k": ["a", "b"]})


async def test_the_rest_of_the_chain_sees_the_new_user_and_no_impersonation_headers():
    seen: dict = {}

    async def record(ctx: RequestContext) -> web.StreamResponse:
        seen["user"], seen["headers"] = ctx.user, dict(ctx.request.headers)
        return web.Response(text="ok")

    asked: list = []

    async def allow(user, info):
        asked.append((user.name, info.verb, info.resource, info.subresource, info.name))
        return True, ""

    ctx = ctx_with(("Impersonate-User", "bob"), ("Impersonate-Group", "devs"), ("Impersonate-Uid", "7"),
                   ("Impersonate-Extra-Scopes", "s"), ("X-Trace", "t"))
    resp = await with_impersonation(record, allow)(ctx)
    assert resp.status == 200
    assert seen["user"] == UserInfo("bob", "7", ("devs", "system:authenticated"), (("scopes", ("s",)),))
    assert seen["headers"] == {"X-Trace": "t", "Accept": "application/json"}
    assert asked == [("alice", "impersonate", "users", "", "bob"), ("alice", "impersonate", "groups", "", "devs"),
                     ("alice", "impersonate", "userextras", "scopes", "s"), ("alice", "impersonate", "uids", "", "7")]


async def test_no_impersonation_headers_pass_through_untouched():
    ctx = ctx_with(("X-Trace", "t"))
    request = ctx.request

    async def record(c: RequestContext) -> web.StreamResponse:
        assert c.user is ALICE and c.request is request
        return web.Response(text="ok")

    async def never(user, info):
        raise AssertionError("no impersonation: nothing to authorize here")

    assert (await with_impersonation(record, never)(ctx)).status == 200


async def test_an_authorizer_error_is_a_403_with_the_first_denied_attribute():
    async def fail_on_groups(user, info):
        if info.resource == "groups":
            raise E.StatusError("Internal Server Error: review failed", code=500)
        return True, ""

    async def unreachable(ctx: RequestContext) -> web.StreamResponse:
        raise AssertionError("must not run")

    resp = await with_impersonation(unreachable, fail_on_groups)(
        ctx_with(("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")))
    assert resp.status == 403
    assert b'groups \\"system:masters\\" is forbidden: User \\"alice\\" cannot impersonate resource \\"groups\\"' \
        in resp.body
