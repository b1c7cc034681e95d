set terminal pngcairo size 900,560 noenhanced font 'DejaVu Sans,10'
set logscale xy
set grid
set key outside right
set xlabel 'nodes (N)'
set datafile separator '\t'
set output '/work/main/docs/scale/writes.png'
set ylabel 'registry writes per node per minute (go-micro timings)'
plot '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-1' ? $2 : 1/0):3 with linespoints title 'micro etcd-1', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-3' ? $2 : 1/0):3 with linespoints title 'micro etcd-3', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro consul' ? $2 : 1/0):3 with linespoints title 'micro consul', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'go-micro v5 etcd-1' ? $2 : 1/0):3 with linespoints title 'go-micro v5 etcd-1'
set output '/work/main/docs/scale/client_memory.png'
set ylabel 'client heap per cached node (bytes)'
plot '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-1' ? $2 : 1/0):4 with linespoints title 'micro etcd-1', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-3' ? $2 : 1/0):4 with linespoints title 'micro etcd-3', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro consul' ? $2 : 1/0):4 with linespoints title 'micro consul', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'go-micro v5 etcd-1' ? $2 : 1/0):4 with linespoints title 'go-micro v5 etcd-1'
set output '/work/main/docs/scale/server_rss.png'
set ylabel 'registry server RSS per node (KiB)'
plot '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-1' ? $2 : 1/0):5 with linespoints title 'micro etcd-1', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro etcd-3' ? $2 : 1/0):5 with linespoints title 'micro etcd-3', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'micro consul' ? $2 : 1/0):5 with linespoints title 'micro consul', \
     '/work/main/docs/scale/data.tsv' using (strcol(1) eq 'go-micro v5 etcd-1' ? $2 : 1/0):5 with linespoints title 'go-micro v5 etcd-1'
