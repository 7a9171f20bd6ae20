// The rtnetlink verbs the control layer uses: one function per kernel verb,
// named like iproute2, with the `ip` command it equals beside it. The upper of
// netlink's two levels, as vishvananda/netlink's route_linux.go is over its
// nl/ package: each verb builds its request (nl_msg.h), sends it on a Socket
// (nl_socket.h) and parses the answer.
//
// Every failure is a weft::SysError whose `call` is the `ip` command that
// would have failed the same way, naming links by name ("ip route replace
// 10.244.3.0/24 dev flannel.1"). A request names a link by index, so its name
// is looked up only once the request has failed (the usual path costs no
// extra round trip); a link gone by then is written "#7" (index 7).
#pragma once

#include <string>
#include <vector>

#include "core/nl_msg.h"
#include "core/nl_socket.h"

namespace weft::nl {

// ip link show dev NAME    (ENODEV "link NAME" when there is none)
Link link_get(Socket& s, const std::string& name);
// ip link show dev #INDEX  (ENODEV "link INDEX")
Link link_get(Socket& s, int ifindex);
// ip link show
std::vector<Link> link_list(Socket& s);
// ip link set dev flannel.1 up / down
void link_set_up(Socket& s, int ifindex, bool up);
// ip link set dev flannel.1 mtu 1450
void link_set_mtu(Socket& s, int ifindex, uint32_t mtu);

// ip addr add 10.244.3.0/32 dev flannel.1
void addr_add(Socket& s, const Addr& a);
// ip addr replace 10.244.3.0/32 dev flannel.1
void addr_replace(Socket& s, const Addr& a);
// ip addr del 10.244.3.0/32 dev flannel.1
void addr_del(Socket& s, const Addr& a);
// ip -4 addr show [dev IFINDEX]   (ifindex 0: every link)
std::vector<Addr> addr_list(Socket& s, int ifindex = 0);

// ip route add 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink
void route_add(Socket& s, const Route& r);
// ip route replace 10.244.3.0/24 dev flannel.1
void route_replace(Socket& s, const Route& r);
// ip route del 10.244.3.0/24 dev flannel.1
void route_del(Socket& s, const Route& r);
// ip -4 route show table main type unicast
std::vector<Route> route_list(Socket& s);
// ip route get 1.2.3.4   (dst, gateway, oif, prefsrc of the answer)
Route route_get(Socket& s, const Ip4& dst);
// The oif of the main table's IPv4 default route with the lowest metric:
// ip -4 route show default | sort by metric | head -1
// (ENETUNREACH "default route" when there is none).
int default_route_link(Socket& s);

}  // namespace weft::nl
