"""The tutorial's clients, as a learner types them, pointed at a lab host.

Each program below makes the same socket calls, in the same order and with
the same buffer sizes, as the corresponding client of the Python socket
tutorial the lab follows (only the address changes from 127.0.0.1 to a lab host name,
given on the command line). The suite feeds them lines on stdin and reads
what they print, which is how a learner would use them.
"""

from __future__ import annotations

# Plain TCP: send a line, print one recv(1024). Used for tcp and twisted.
TCP = """
import socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
while True:
    send_data = input(">>>:")
    if send_data == "exit":
        break
    if len(send_data) == 0:
        continue
    s.send(bytes(send_data, encoding="utf-8"))
    recv_data = s.recv(1024)
    print(str(recv_data, encoding="utf-8"))
s.close()
"""

# UDP: sendto, print recvfrom(1024).
UDP = """
import socket, sys
ip_port = (sys.argv[1], int(sys.argv[2]))
sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
while True:
    inp = input("data:").strip()
    if inp == "exit":
        break
    sk.sendto(bytes(inp, encoding="utf-8"), ip_port)
    data = sk.recvfrom(1024)
    print(data[0])
sk.close()
"""

# The select client: print the greeting, then sendall and print recv(1024).
SELECT = """
import socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
print(s.recv(1024))
while True:
    send_data = input(">>>:")
    if send_data == "exit":
        break
    if len(send_data) == 0:
        continue
    s.sendall(bytes(send_data, encoding="utf-8"))
    print(s.recv(1024))
s.close()
"""

# The socketserver "call centre" client (exec port 9000): welcome, then lines.
CALL_CENTRE = """
import socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
welcome_msg = s.recv(1024)
print(welcome_msg.decode())
while True:
    send_data = input(">>>:")
    if send_data == "exit":
        break
    if len(send_data) == 0:
        continue
    s.send(bytes(send_data, encoding="utf-8"))
    recv_data = s.recv(1024)
    print(str(recv_data, encoding="utf-8"))
s.close()
"""

# The sticky-packet fix (exec port 9001): Ready|n, start, recv(100) until n.
HANDSHAKE = """
import socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
while True:
    send_data = input(">>>:")
    if send_data == "exit":
        break
    if len(send_data) == 0:
        continue
    s.send(bytes(send_data, encoding="utf-8"))
    recv_tag = str(s.recv(1024), encoding="utf-8")
    if recv_tag.startswith("Ready"):
        msg_size = int(recv_tag.split("|")[1])
        s.send(bytes("start", encoding="utf-8"))
        recv_size = 0
        msg_data = b""
        while recv_size != msg_size:
            recv_data = s.recv(100)
            recv_size += len(recv_data)
            msg_data += recv_data
        print("message size %s recv size %s" % (msg_size, recv_size))
        print(str(msg_data, encoding="utf-8"))
s.close()
"""

# The ftp client: welcome, put PATH, JSON header, 200, the file line by line,
# then the next recv(1024) prints the server's final answer.
FTP = """
import json, os, socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
print(s.recv(1024).decode())
while True:
    send_data = input(">>>:").strip()
    if send_data == "exit":
        break
    if len(send_data) == 0:
        continue
    cmd_list = send_data.split()
    if cmd_list[0] == "put":
        path = cmd_list[1]
        file_size = os.stat(path).st_size
        filename = path.split("/")[-1]
        msg = {"action": "put", "filename": filename, "filesize": file_size}
        s.send(bytes(json.dumps(msg), encoding="utf-8"))
        confirm = json.loads(s.recv(1024).decode())
        if confirm["status"] == 200:
            with open(path, "rb") as f:
                for line in f:
                    s.send(line)
    recv_data = s.recv(1024)
    print(str(recv_data, encoding="utf-8"))
s.close()
"""
