"""A fixed subset of irctest (../shared/irctest) against `chat serve`'s IRC door, through our controller
(tests/irctest/chat_irctest.py). The whole selection takes minutes: `scripts/irctest.py` runs it (docs/IRC.md has
its results). Skipped, saying why, where irctest or its dependencies are absent."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# ../shared/irctest beside the repository (or beside the folder of a git worktree); CHAT_IRCTEST says otherwise
IRCTEST = Path(os.environ.get("CHAT_IRCTEST") or next(
    (p / "shared" / "irctest" for p in ROOT.parents if (p / "shared" / "irctest").is_dir()), ROOT.parent / "shared"
    / "irctest"))
CONTROLLER_DIR = Path(__file__).resolve().parent / "irctest"

# chosen across registration, messages, channels, people and each capability we claim; every one passes
SUBSET = [
    "connection_registration.py::ConnectionRegistrationTestCase::testConnectionRegistration",
    "connection_registration.py::ConnectionRegistrationTestCase::testQuitDisconnects",
    "connection_registration.py::ConnectionRegistrationTestCase::testQuitErrors",
    "connection_registration.py::ConnectionRegistrationTestCase::testNickCollision",
    "connection_registration.py::ConnectionRegistrationTestCase::testEarlyNickCollision",
    "connection_registration.py::ConnectionRegistrationTestCase::testEmptyRealname",
    "pingpong.py::PingPongTestCase::testPing",
    "pingpong.py::PingPongTestCase::testPingNoToken",
    "messages.py::PrivmsgTestCase::testPrivmsg",
    "messages.py::PrivmsgTestCase::testPrivmsgNonexistentChannel",
    "messages.py::PrivmsgTestCase::testPrivmsgNonexistentUser",
    "messages.py::PrivmsgTestCase::testPrivmsgToUser",
    "messages.py::NoticeTestCase::testNoticeNonexistentChannel",
    "messages.py::TagsTestCase::testLineTooLong",
    "join.py::JoinTestCase::testJoinAllMessages",
    "join.py::JoinTestCase::testJoinNamreply",
    "join.py::JoinTestCase::testJoinTwice",
    "part.py::PartTestCase::testPartMessage",
    "part.py::PartTestCase::testBasicPart",
    "part.py::PartTestCase::testPartNotInEmptyChannel",
    "quit.py::ChannelQuitTestCase::testQuit",
    "list.py::ListTestCase::testListEmpty",
    "list.py::ListTestCase::testListOne",
    "topic.py::TopicTestCase::testTopicNonexistentChannel",
    "cap.py::CapTestCase::testIrc301CapLs",
    "cap.py::CapTestCase::testNoReq",
    "cap.py::CapTestCase::testReqOne",
    "cap.py::CapTestCase::testReqTwo",
    "cap.py::CapTestCase::testNakWhole",
    "cap.py::CapTestCase::testCapRemovalByClient",
    "cap.py::CapTestCase::testReqPostRegistration",
    "echo_message.py::EchoMessageTestCase::testEchoMessage[PRIVMSG-False-False]",
    "echo_message.py::EchoMessageTestCase::testEchoMessage[PRIVMSG-True-True]",
    "echo_message.py::EchoMessageTestCase::testEchoMessage[PRIVMSG-False-True]",
    # people, session ops and the numerics that name them
    "who.py::WhoTestCase::testWhoChan[exact]",
    "whois.py::WhoisTestCase::testWhoisNumerics[away]",
    "away.py::AwayTestCase::testAwayPrivmsg",
    "whowas.py::WhowasTestCase::testWhowasMultiple",
    "lusers.py::BasicLusersTestCase::testLusersFull",
    "chmodes/key.py::KeyTestCase::testKeyNormal",
    "chmodes/limit.py::LimitTestCase::testLimitMode",
    "chmodes/secret.py::SecretChannelTestCase::testSecretChannelListCommand",
    "chmodes/no_external.py::NoExternalMessagesTestCase::testNoExternalMessagesMode",
    "chmodes/modeis.py::RplChannelModeIsTestCase::testChannelModeIs",
    "chmodes/operator.py::ChannelOperatorModeTestCase::testChannelOperatorModeTargetNotInChannel",
    "topic.py::TopicPrivilegesTestCase::testTopicPrivileges",
    # operators (an admin account's name and password), NOTICE as its own kind, TIME
    "oper.py::OperTestCase::testOperSuccess",
    "kill.py::KillTestCase::testKill",
    "wallops.py::WallopsTestCase::testWallops",
    "who.py::WhoTestCase::testWhoNickOper[mask]",
    "messages.py::NoticeTestCase::testNotice",
    "time.py::TimeTestCase::testTime",
    # LINKS, the IRC door's server password, invite exceptions (+I)
    "links.py::LinksTestCase::testLinksSingleServer",
    "connection_registration.py::PasswordedConnectionRegistrationTestCase::testWrongPassword",
    "chmodes/invite_exception.py::InviteExceptionTestCase::testInviteExceptionRemoval",
    # ban masks and ban exceptions (+e)
    "chmodes/ban.py::BanModeTestCase::testBanException",
    "chmodes/ban.py::BanModeTestCase::testBanList",
    # CHATHISTORY by time and TARGETS; SASL PLAIN in 400-byte chunks, and 907 once logged in
    "chathistory.py::ChathistoryTestCase::testChathistory[BETWEEN]",
    "chathistory.py::ChathistoryTestCase::testChathistoryTargetsExcludesUpdatedTargets",
    "sasl.py::SaslTestCase::testPlainLarge",
    "sasl.py::SaslTestCase::testPlainLarge800",
]


def missing() -> str | None:
    if not IRCTEST.is_dir():
        return f"irctest is not at {IRCTEST} (a pinned copy lives beside the repository)"
    for module in ("filelock", "xdist"):
        if importlib.util.find_spec(module) is None:
            return f"irctest needs the Python package {module} here"
    return None


@pytest.mark.timeout(600)
def test_irctest_subset() -> None:
    problem = missing()
    if problem:
        pytest.skip(problem)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CONTROLLER_DIR), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_TESTRUNUID", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--controller", "chat_irctest", "-n", "2", "-q",
         "-rfE", *(f"irctest/server_tests/{test}" for test in SUBSET)],
        cwd=IRCTEST, env=env, capture_output=True, text=True, timeout=540)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    failures = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert done.returncode == 0 and not failures, f"{summary}\n" + "\n".join(failures) + "\n" + done.stdout[-4000:]
    assert f"{len(SUBSET)} passed" in summary, summary
