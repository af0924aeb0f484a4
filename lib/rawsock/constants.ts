/**
 * Linux socket constants (identical on x86_64 and aarch64), from the kernel's
 * UAPI headers. Internal to `lib/rawsock/`.
 *
 * @module
 */

export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;
export const SOL_SOCKET = 1;
export const SO_ACCEPTCONN = 30;
export const EBADF = 9;
export const SO_TIMESTAMPNS = 35;
export const SOL_RAW = 255;
export const ICMP_FILTER = 1;
export const ICMP6_FILTER = 1;
export const SO_BINDTODEVICE = 25;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_ATTACH_FILTER = 26;
export const IP_TTL = 2;
export const IP_RECVERR = 11;
export const IP_RECVTTL = 12;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_RECVERR = 25;
export const IPV6_RECVHOPLIMIT = 51;
export const IPV6_HOPLIMIT = 52;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const MSG_ERRQUEUE = 0x2000;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const TIMER_ABSTIME = 1;
export const PR_SET_TIMERSLACK = 29;
export const PR_GET_TIMERSLACK = 30;
