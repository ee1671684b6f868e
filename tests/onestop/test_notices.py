"""Applicants are told where their application stands: a notice in the portal when it is
received, and the same by e-mail to the address the application gives, through the SMTP server
the platform is configured with. The SMTP server here is aiosmtpd, an independent implementation;
`cargo xtask test` points the platform at SMTP_PORT and sweeps every two seconds."""

import os
import time
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
import requests
from aiosmtpd.controller import Controller

from people import Person, login_labelled

BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")
DATA_DIR = os.environ.get("SAPHAN_DATA_DIR", "")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "0"))


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture(scope="module")
def inbox():
    if not BASE_URL or not DATA_DIR or not SMTP_PORT:
        pytest.exit("tests/onestop/test_notices.py needs BASE_URL, SAPHAN_DATA_DIR and SMTP_PORT", returncode=4)
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield handler
    controller.stop()


def service_id(code: str) -> str:
    services = requests.get(f"{BASE_URL}/registration/services", timeout=10).json()
    return next(s["id"] for s in services
                if {p["code"]: p["value"] for p in s["serviceBody"]}["code"] == code)


def test_a_received_application_is_noticed_in_the_portal_and_by_e_mail(inbox):
    owner = Person(BASE_URL, login_labelled(DATA_DIR, "business representative"))
    company = owner.req("GET", "/api/v1/me/act-for").json()[0]["juristic_id"]
    plan = owner.req("POST", "/registration/documents",
                     files={"file": ("plan.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")}).json()["documentId"]
    address = f"owner-{int(time.time())}@example.org"
    typed = {"shopName": "ครัวแจ้งเตือน", "premisesAddress": "1 ถนนทดสอบ แขวงบางรัก", "areaSqm": 300,
             "floorPlan": plan, "signText": "ครัวแจ้งเตือน", "widthM": 2, "heightM": 1, "mounting": "wall",
             "phone": "0812345678", "email": address}
    r = owner.req("POST", f"/registration/services/{service_id('open-a-restaurant')}/applications",
                  json={"formData": {"data": typed}, "onBehalfOf": company, "consentToRegistryReads": True})
    assert r.status_code == 200, r.text
    tracking = r.json()["trackingNumber"]

    # In the portal: "my applications" shows the notice.
    page = owner.http.get(f"{BASE_URL}/applications?lang=en", timeout=10)
    assert page.status_code == 200 and tracking in page.text and "received" in page.text

    # By e-mail, within a few sweeps.
    deadline = time.time() + 60
    mine = []
    while time.time() < deadline and not mine:
        mine = [m for to, m in inbox.messages if address in to]
        time.sleep(1)
    assert mine, f"no e-mail reached {address} ({len(inbox.messages)} others)"
    message = mine[0]
    assert tracking in str(make_header(decode_header(message["Subject"])))
    body = message.get_payload(decode=True).decode("utf-8")
    assert tracking in body and "received" in body and "ได้รับคำขอแล้ว" in body
