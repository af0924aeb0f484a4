# UDPPingerClient.py
# The client of the course's UDP pinger assignment (Kurose & Ross,
# socket programming assignment 2), written out as a test fixture in the
# form the assignment asks for: send 10 pings "Ping sequence_number time",
# wait up to one second for each reply, print the reply and its RTT, or
# "Request timed out". Standard library only.
#
# Usage: python3 UDPPingerClient.py HOST [PORT]   (PORT defaults to 12000)
import sys
import time
from socket import *

serverName = sys.argv[1] if len(sys.argv) > 1 else 'localhost'
serverPort = int(sys.argv[2]) if len(sys.argv) > 2 else 12000

# Create a UDP socket of the server address's family
family = AF_INET6 if ':' in serverName else AF_INET
clientSocket = socket(family, SOCK_DGRAM)
# Wait at most one second for each reply
clientSocket.settimeout(1)

for sequence_number in range(1, 11):
    sendTime = time.time()
    message = 'Ping %d %s' % (sequence_number, sendTime)
    clientSocket.sendto(message.encode(), (serverName, serverPort))
    try:
        modifiedMessage, serverAddress = clientSocket.recvfrom(1024)
        rtt = time.time() - sendTime
        print(modifiedMessage.decode())
        print('RTT: %.6f seconds' % rtt)
    except timeout:
        print('Request timed out')

clientSocket.close()
