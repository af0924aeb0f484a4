/*
 * udp_blaster: a closed-loop load generator for the UDP ping server.
 *
 * Keeps WINDOW requests ("Ping <seq> 0.000000", padded to SIZE bytes) in
 * flight, spread over SOCKETS connected UDP sockets (each its own source port,
 * i.e. its own client to the server), sends with sendmmsg and receives with
 * recvmmsg, and counts the replies. After a one-second warm-up it measures
 * for DURATION seconds and prints one JSON line:
 *   {"sent":N,"received":N,"seconds":S,"rps":R,"stalls":N}
 * A stall is 20 ms without any reply; the window is then refilled (requests
 * dropped by the server are not waited for).
 *
 * With OPEN_HEX, it speaks irtt's protocol instead, so that irtt's server
 * takes the same load: each socket first sends OPEN_HEX (an open request as
 * `irtt client` sent it, captured by bench/udp.ts), reads its conn token
 * from the reply, then sends echo requests of SIZE bytes (magic, flags 0,
 * token, seqno, zeros; irtt's layout in its packet.go), where SIZE must be
 * the length that irtt client used, as the server replies in the request's
 * length.
 *
 * Build: gcc -O2 -o udp_blaster udp_blaster.c
 * Usage: udp_blaster HOST PORT [DURATION=5] [WINDOW=64] [SIZE=32] [SOCKETS=1] [OPEN_HEX]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXSIZE 1472
#define MAXSOCKETS 64

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s HOST PORT [DURATION] [WINDOW] [SIZE] [SOCKETS] [OPEN_HEX]\n",
            argv[0]);
    return 2;
  }
  double duration = argc > 3 ? atof(argv[3]) : 5;
  int window = argc > 4 ? atoi(argv[4]) : 64;
  int size = argc > 5 ? atoi(argv[5]) : 32;
  int nsock = argc > 6 ? atoi(argv[6]) : 1;
  const char *open_hex = argc > 7 ? argv[7] : NULL;
  unsigned char open_req[MAXSIZE];
  size_t open_len = 0;
  if (open_hex) {
    for (; open_hex[2 * open_len] && open_len < MAXSIZE; open_len++) {
      unsigned v;
      if (sscanf(open_hex + 2 * open_len, "%2x", &v) != 1) return 2;
      open_req[open_len] = (unsigned char)v;
    }
  }
  if (window < 1 || window > 4096 || size < 1 || size > MAXSIZE) return 2;
  if (nsock < 1 || nsock > MAXSOCKETS || nsock > window) return 2;

  struct addrinfo hints = {0}, *ai;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0) {
    fprintf(stderr, "cannot resolve %s\n", argv[1]);
    return 2;
  }
  int fds[MAXSOCKETS];
  struct pollfd pfd[MAXSOCKETS];
  long inflight[MAXSOCKETS] = {0}, share[MAXSOCKETS];
  unsigned char token[MAXSOCKETS][8];
  for (int s = 0; s < nsock; s++) {
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      perror("socket/connect");
      return 1;
    }
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    fds[s] = fd;
    pfd[s].fd = fd;
    pfd[s].events = POLLIN;
    if (open_hex) {
      /* irtt: open a conn, and keep its token (bytes 4..11 of the reply). */
      unsigned char reply[MAXSIZE];
      ssize_t n = -1;
      for (int tries = 0; tries < 3 && n < 12; tries++) {
        send(fd, open_req, open_len, 0);
        if (poll(&pfd[s], 1, 1000) > 0) n = recv(fd, reply, sizeof reply, 0);
      }
      if (n < 12 || reply[0] != 0x14 || reply[1] != 0xa7 || reply[2] != 0x5b) {
        fprintf(stderr, "irtt server did not open a conn\n");
        return 1;
      }
      memcpy(token[s], reply + 4, 8);
    }
    share[s] = window / nsock + (s < window % nsock);
  }

  static char out[BATCH][MAXSIZE], in[BATCH][MAXSIZE];
  struct mmsghdr smsg[BATCH], rmsg[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  memset(smsg, 0, sizeof smsg);
  memset(rmsg, 0, sizeof rmsg);
  for (int i = 0; i < BATCH; i++) {
    siov[i].iov_base = out[i];
    smsg[i].msg_hdr.msg_iov = &siov[i];
    smsg[i].msg_hdr.msg_iovlen = 1;
    riov[i].iov_base = in[i];
    riov[i].iov_len = MAXSIZE;
    rmsg[i].msg_hdr.msg_iov = &riov[i];
    rmsg[i].msg_hdr.msg_iovlen = 1;
  }

  unsigned long long seq = 0, sent = 0, received = 0, stalls = 0;
  double start = now(), measure = start + 1.0, end = measure + duration;
  int measuring = 0;
  for (;;) {
    double t = now();
    if (!measuring && t >= measure) {
      measuring = 1;
      sent = received = stalls = 0;
    }
    if (t >= end) break;
    for (int s = 0; s < nsock; s++) {
      while (inflight[s] < share[s]) {
        int n = share[s] - inflight[s] < BATCH ? share[s] - inflight[s] : BATCH;
        for (int i = 0; i < n; i++) {
          if (open_hex) {
            unsigned int sn = (unsigned int)++seq;
            memset(out[i], 0, size);
            memcpy(out[i], "\x14\xa7\x5b\x00", 4);
            memcpy(out[i] + 4, token[s], 8);
            memcpy(out[i] + 12, &sn, 4); /* little-endian, as irtt (x86 and arm64) */
            siov[i].iov_len = size;
            continue;
          }
          int len = snprintf(out[i], MAXSIZE, "Ping %llu 0.000000", ++seq);
          if (len < size) {
            memset(out[i] + len, 'x', size - len);
            out[i][len] = ' ';
            len = size;
          }
          siov[i].iov_len = len;
        }
        int k = sendmmsg(fds[s], smsg, n, 0);
        if (k <= 0) break;
        inflight[s] += k;
        sent += k;
      }
    }
    if (poll(pfd, nsock, 20) == 0) {
      stalls++;
      for (int s = 0; s < nsock; s++) inflight[s] = 0;
      continue;
    }
    for (int s = 0; s < nsock; s++) {
      if (!(pfd[s].revents & POLLIN)) continue;
      int k = recvmmsg(fds[s], rmsg, BATCH, MSG_DONTWAIT, NULL);
      if (k > 0) {
        received += k;
        inflight[s] -= k;
        if (inflight[s] < 0) inflight[s] = 0;
      }
    }
  }
  printf("{\"sent\":%llu,\"received\":%llu,\"seconds\":%.3f,\"rps\":%.0f,\"stalls\":%llu}\n", sent,
         received, duration, received / duration, stalls);
  return 0;
}
