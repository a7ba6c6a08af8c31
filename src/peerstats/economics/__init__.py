from peerstats.economics.eq5d import eq5d, value_sets, DIMENSIONS, ValueSet, load_value_set
from peerstats.economics.cea import CostEffectiveness, cost_effectiveness
