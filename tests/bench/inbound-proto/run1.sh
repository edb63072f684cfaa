#!/bin/bash
# run1.sh LAYOUT N : load, flood allowed udp 53 to port N/2's address for 5 s, then time delete/add of that port
set -e
: "${UDPFLOOD:?gcc -O2 -o udpflood tests/bench/udpflood.c; export UDPFLOOD=its path}" "${OUT:=/tmp}"
L=$1; N=$2; NS=pernic-$L-$N
python3 $(dirname "$0")/gen.py $L $N $OUT/s-$L-$N.nft
ip netns del $NS 2>/dev/null || true
ip netns add $NS
ip -n $NS link set lo up
ip -n $NS link add d0 type veth peer name d1; ip -n $NS link set d0 up; ip -n $NS link set d1 up
H=$(printf '%x' $((N/2)))
ip -n $NS addr add 2001:db8:1:$H::10/128 dev d0 nodad
ip -n $NS addr add 2001:db8:ff::1/128 dev d0 nodad
sleep 0.5
echo "== $L $N load: $( { /usr/bin/time -f '%e s (%S sys)' ip netns exec $NS nft -f $OUT/s-$L-$N.nft; } 2>&1 )"
ip netns exec $NS $UDPFLOOD sink 53 30 & SP=$!
sleep 0.3
for r in 1 2 3; do
  echo "flood allowed $r: $(ip netns exec $NS $UDPFLOOD send 2001:db8:1:$H::10 53 5)"
done
echo "flood dropped (udp 54): $(ip netns exec $NS $UDPFLOOD send 2001:db8:1:$H::10 54 2)"
ip netns exec $NS nft list chain inet scratch ingress-deny | grep counter
kill $SP 2>/dev/null || true
for r in 1 2 3; do
  echo "stop (delete one port) $r: $( { /usr/bin/time -f '%e s (%S sys)' ip netns exec $NS nft -f $OUT/s-$L-$N.nft.del; } 2>&1 )"
  echo "start (add one port) $r: $( { /usr/bin/time -f '%e s (%S sys)' ip netns exec $NS nft -f $OUT/s-$L-$N.nft.add; } 2>&1 )"
done
ip netns del $NS
