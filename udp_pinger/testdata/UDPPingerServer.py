# UDPPingerServer.py
# The course's UDP pinger server (Kurose & Ross, "Computer Networking: A
# Top-Down Approach", socket programming assignment 2), written out
# faithfully as a test fixture. Standard library only.
#
# Two test-only changes, both from the command line and both defaulting to
# the original behaviour: an optional port (argv[1], default 12000) so
# parallel tests do not collide, and an optional bind address (argv[2],
# default '' as in the original; '::1' binds IPv6).
# We will need the following module to generate randomized lost packets
import random
import sys
from socket import *

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
host = sys.argv[2] if len(sys.argv) > 2 else ''

# Create a UDP socket
# Notice the use of SOCK_DGRAM for UDP packets
serverSocket = socket(AF_INET6 if ':' in host else AF_INET, SOCK_DGRAM)
# Assign IP address and port number to socket
serverSocket.bind((host, port))
# Tell the test harness which port was bound (0 picks a free one).
print(serverSocket.getsockname()[1], flush=True)

while True:
    # Generate random number in the range of 0 to 10
    rand = random.randint(0, 10)
    # Receive the client packet along with the address it is coming from
    message, address = serverSocket.recvfrom(1024)
    # Capitalize the message from the client
    message = message.upper()
    # If rand is less is than 4, we consider the packet lost and do not respond
    if rand < 4:
        continue
    # Otherwise, the server responds
    serverSocket.sendto(message, address)
