#!/bin/bash
: "${UDPFLOOD:?export UDPFLOOD=path of tests/bench/udpflood.c compiled}"
NS=pernic-none; ip netns del $NS 2>/dev/null; ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add d0 type veth peer name d1; ip -n $NS link set d0 up; ip -n $NS link set d1 up
ip -n $NS addr add 2001:db8:1:1388::10/128 dev d0 nodad; ip -n $NS addr add 2001:db8:ff::1/128 dev d0 nodad; sleep 0.5
ip netns exec $NS $UDPFLOOD sink 53 30 & SP=$!; sleep 0.3
for r in 1 2 3; do echo "== none flood $r: $(ip netns exec $NS $UDPFLOOD send 2001:db8:1:1388::10 53 5)"; done
kill $SP; ip netns del $NS
