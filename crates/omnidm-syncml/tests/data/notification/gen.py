#!/usr/bin/env python3
"""Writes the package 0 samples in this directory, independently of the Rust code.

Layout per OMA-TS-DM_Notification-V1_2 section 6.2.1; digest per section 6.2.2.2:
H(B64(H(server-identifier:password)):nonce:B64(H(trigger))), H = MD5.
Run from this directory: python3 gen.py
"""
import base64, hashlib, struct

def md5(b): return hashlib.md5(b).digest()
def b64(b): return base64.b64encode(b)

def pkg0(version, ui, initiator, future, session, server_id, body, password, nonce):
    sid = server_id.encode()
    # 40 bits: version(10) ui(2) initiator(1) future(27); then session(16), length(8).
    top = (version << 30) | (ui << 28) | (initiator << 27) | future
    hdr = top.to_bytes(5, "big") + struct.pack(">HB", session, len(sid)) + sid
    trigger = hdr + body
    digest = md5(b64(md5(sid + b":" + password)) + b":" + nonce + b":" + b64(md5(trigger)))
    return digest + trigger

samples = {
    # v1.2, background, server-initiated, session 0x1234, nonce = bytes 0..15
    "v12-background-server.bin": pkg0(12, 1, 1, 0, 0x1234, "omnidm", b"",
                                      b"srvsecret", bytes(range(16))),
    # v1.1, user interaction, client-initiated, session 0xFFFF, vendor body, empty nonce
    "v11-userinteraction-vendor.bin": pkg0(11, 3, 0, 0, 0xFFFF, "funambol", b"\x01\x02vendor\x00",
                                           b"srvpwd", b""),
    # non-zero future-use bits, informative; nonce is the ASCII resync nonce "0x00000000"
    "future-bits-resync.bin": pkg0(12, 2, 1, 0x5A5A5A5, 1, "srv", b"", b"pw", b"0x00000000"),
}
for name, data in samples.items():
    with open(name, "wb") as f:
        f.write(data)
    print(name, data.hex())
