// Linux's epoll for vacancy-bench's raw HTTP/1.1 reader (Glibc's Swift module leaves it out).
#include <sys/epoll.h>
